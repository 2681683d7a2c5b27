What is Man in base64?
