url decode a%20b
