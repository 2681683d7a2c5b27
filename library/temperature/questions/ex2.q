convert 98.6 degrees fahrenheit to celsius
