what is uryyb in rot13
