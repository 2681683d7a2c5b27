base64 encode hello
