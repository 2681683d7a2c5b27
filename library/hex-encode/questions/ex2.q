encode abc as hex
