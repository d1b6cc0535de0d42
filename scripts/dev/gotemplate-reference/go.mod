module gotemplatereference

go 1.22
