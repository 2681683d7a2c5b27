How many words are in the cat sat on the mat?
