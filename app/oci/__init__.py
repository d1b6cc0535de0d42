"""OCI images on disk: reference grammar (`reference`) and an image layout read as a catalogue (`layout`)."""
