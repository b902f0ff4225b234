print("silt-bench: not written yet")
