Is 4111 1111 1111 1111 a valid card number?
