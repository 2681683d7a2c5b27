Is 97 prime?
