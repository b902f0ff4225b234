// SiltRing: see the files of this module.
