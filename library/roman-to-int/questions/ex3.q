What number is the Roman numeral MMXXVI?
