decode the base64 TWFu
