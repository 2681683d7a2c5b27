What is the LCM of 4 and 6?
