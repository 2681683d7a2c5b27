slugify Hello, World!
