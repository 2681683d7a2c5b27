rot13 Hello
