What is 100 degrees Celsius in Fahrenheit?
