decode the hex 616263
