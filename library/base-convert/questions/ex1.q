convert ff from base 16 to base 10
