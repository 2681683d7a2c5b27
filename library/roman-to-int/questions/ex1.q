what is MCMXCIV in decimal?
