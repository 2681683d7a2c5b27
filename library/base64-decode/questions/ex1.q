base64 decode aGVsbG8=
