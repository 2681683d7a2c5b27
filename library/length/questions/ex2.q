How many ft are in 12 in?
