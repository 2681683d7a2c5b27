What is 255 in hex?
