write 2026 as a roman numeral
