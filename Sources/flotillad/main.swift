print("flotillad: not built yet")
