hex encode Hi!
