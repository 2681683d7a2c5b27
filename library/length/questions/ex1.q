convert 1 mi to km
