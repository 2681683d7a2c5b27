What is the CRC32 of 123456789?
