"""The Butane Flatcar-variant schema the translator walks (base v0_4/v0_5 fields)."""

# --- the Butane schema: (butane key, Ignition key) in Ignition's (Go struct) output order -------------
# A kind is "str", "int", "bool", a one-item list [kind], or a struct name. An Ignition key of None
# marks Butane-only sugar handled by the translator; a 4th item gates fields new in Ignition 3.4.0 (Flatcar
# 1.1.0): in 1.0.0 they are unknown keys.
S = {
    "Config": [("ignition", "ignition", "Ignition"), ("kernel_arguments", "kernelArguments", "KernelArgs"),
               ("passwd", "passwd", "Passwd"), ("storage", "storage", "Storage"),
               ("systemd", "systemd", "Systemd"), ("variant", None, "str"), ("version", None, "str")],
    "Ignition": [("config", "config", "IgnitionConfig"), ("proxy", "proxy", "Proxy"),
                 ("security", "security", "Security"), ("timeouts", "timeouts", "Timeouts")],
    "IgnitionConfig": [("merge", "merge", ["Resource"]), ("replace", "replace", "Resource")],
    "Proxy": [("http_proxy", "httpProxy", "str"), ("https_proxy", "httpsProxy", "str"),
              ("no_proxy", "noProxy", ["str"])],
    "Security": [("tls", "tls", "TLS")],
    "TLS": [("certificate_authorities", "certificateAuthorities", ["Resource"])],
    "Timeouts": [("http_response_headers", "httpResponseHeaders", "int"), ("http_total", "httpTotal", "int")],
    "KernelArgs": [("should_exist", "shouldExist", ["str"]), ("should_not_exist", "shouldNotExist", ["str"])],
    "Passwd": [("groups", "groups", ["Group"]), ("users", "users", ["User"])],
    "Group": [("gid", "gid", "int"), ("name", "name", "str"), ("password_hash", "passwordHash", "str"),
              ("should_exist", "shouldExist", "bool"), ("system", "system", "bool")],
    "User": [("gecos", "gecos", "str"), ("groups", "groups", ["str"]), ("home_dir", "homeDir", "str"),
             ("name", "name", "str"), ("no_create_home", "noCreateHome", "bool"),
             ("no_log_init", "noLogInit", "bool"), ("no_user_group", "noUserGroup", "bool"),
             ("password_hash", "passwordHash", "str"), ("primary_group", "primaryGroup", "str"),
             ("ssh_authorized_keys", "sshAuthorizedKeys", ["str"]), ("shell", "shell", "str"),
             ("should_exist", "shouldExist", "bool"), ("system", "system", "bool"), ("uid", "uid", "int"),
             ("ssh_authorized_keys_local", None, ["str"], "3.4.0")],
    "Storage": [("directories", "directories", ["Directory"]), ("disks", "disks", ["Disk"]),
                ("files", "files", ["File"]), ("filesystems", "filesystems", ["Filesystem"]),
                ("links", "links", ["Link"]), ("luks", "luks", ["Luks"]), ("raid", "raid", ["Raid"]),
                ("trees", None, ["Tree"])],
    "NodeOwner": [("id", "id", "int"), ("name", "name", "str")],
    "File": [("group", "group", "NodeOwner"), ("overwrite", "overwrite", "bool"), ("path", "path", "str"),
             ("user", "user", "NodeOwner"), ("append", "append", ["Resource"]),
             ("contents", "contents", "Resource"), ("mode", "mode", "int")],
    "Directory": [("group", "group", "NodeOwner"), ("overwrite", "overwrite", "bool"), ("path", "path", "str"),
                  ("user", "user", "NodeOwner"), ("mode", "mode", "int")],
    "Link": [("group", "group", "NodeOwner"), ("overwrite", "overwrite", "bool"), ("path", "path", "str"),
             ("user", "user", "NodeOwner"), ("hard", "hard", "bool"), ("target", "target", "str")],
    "Tree": [("local", None, "str"), ("path", None, "str")],
    "Resource": [("compression", "compression", "str"), ("http_headers", "httpHeaders", ["Header"]),
                 ("source", "source", "str"), ("verification", "verification", "Verification"),
                 ("inline", None, "str"), ("local", None, "str")],
    "Header": [("name", "name", "str"), ("value", "value", "str")],
    "Verification": [("hash", "hash", "str")],
    "Disk": [("device", "device", "str"), ("partitions", "partitions", ["Partition"]),
             ("wipe_table", "wipeTable", "bool")],
    "Partition": [("guid", "guid", "str"), ("label", "label", "str"), ("number", "number", "int"),
                  ("resize", "resize", "bool"), ("should_exist", "shouldExist", "bool"),
                  ("size_mib", "sizeMiB", "int"), ("start_mib", "startMiB", "int"),
                  ("type_guid", "typeGuid", "str"), ("wipe_partition_entry", "wipePartitionEntry", "bool")],
    "Filesystem": [("device", "device", "str"), ("format", "format", "str"), ("label", "label", "str"),
                   ("mount_options", "mountOptions", ["str"]), ("options", "options", ["str"]),
                   ("path", "path", "str"), ("uuid", "uuid", "str"), ("wipe_filesystem", "wipeFilesystem", "bool"),
                   ("with_mount_unit", None, "bool")],
    "Luks": [("clevis", "clevis", "Clevis"), ("device", "device", "str"), ("discard", "discard", "bool", "3.4.0"),
             ("key_file", "keyFile", "Resource"), ("label", "label", "str"), ("name", "name", "str"),
             ("open_options", "openOptions", ["str"], "3.4.0"), ("options", "options", ["str"]),
             ("uuid", "uuid", "str"), ("wipe_volume", "wipeVolume", "bool")],
    "Clevis": [("custom", "custom", "ClevisCustom"), ("tang", "tang", ["Tang"]), ("threshold", "threshold", "int"),
               ("tpm2", "tpm2", "bool")],
    "ClevisCustom": [("config", "config", "str"), ("needs_network", "needsNetwork", "bool"), ("pin", "pin", "str")],
    "Tang": [("advertisement", "advertisement", "str", "3.4.0"), ("thumbprint", "thumbprint", "str"),
             ("url", "url", "str")],
    "Raid": [("devices", "devices", ["str"]), ("level", "level", "str"), ("name", "name", "str"),
             ("options", "options", ["str"]), ("spares", "spares", "int")],
    "Systemd": [("units", "units", ["Unit"])],
    "Unit": [("contents", "contents", "str"), ("dropins", "dropins", ["Dropin"]), ("enabled", "enabled", "bool"),
             ("mask", "mask", "bool"), ("name", "name", "str"), ("contents_local", None, "str", "3.4.0")],
    "Dropin": [("contents", "contents", "str"), ("name", "name", "str"), ("contents_local", None, "str", "3.4.0")],
}
GO_TYPES = {"str": "string", "int": "int", "bool": "bool"}
YAML_TAGS = {str: "str", int: "int", float: "float", bool: "bool", list: "seq", dict: "map"}

YAML11_TRUE = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")
YAML11_FALSE = ("n", "N", "no", "No", "NO", "off", "Off", "OFF")


def yaml_bool(value) -> bool | None:
    """A value as go-yaml v3 decodes it into a Go bool: true/false, or (for YAML 1.1 compatibility,
    quoted or not) the y/yes/on and n/no/off spellings. None: not a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in YAML11_TRUE + YAML11_FALSE:
        return value in YAML11_TRUE
    return None
