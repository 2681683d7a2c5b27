What is 1994 in Roman numerals?
