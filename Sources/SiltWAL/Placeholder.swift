// SiltWAL: see the files of this module.
