print("flotillactl: not built yet")
