url encode a b&c
