convert the roman numeral XIV to decimal
