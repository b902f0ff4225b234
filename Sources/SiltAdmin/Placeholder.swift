// SiltAdmin: see the files of this module.
