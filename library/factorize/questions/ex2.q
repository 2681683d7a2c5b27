factorize 1024
