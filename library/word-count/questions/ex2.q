word count of a b c
