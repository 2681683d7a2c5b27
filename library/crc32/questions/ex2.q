crc32 of hello
