percent-encode x=1
