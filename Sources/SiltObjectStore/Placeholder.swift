// SiltObjectStore: see the files of this module.
