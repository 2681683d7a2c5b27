what weekday was 1970-01-01
