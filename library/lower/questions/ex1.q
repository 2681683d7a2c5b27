convert HELLO to lower case
