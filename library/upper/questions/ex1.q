convert hello world to upper case
