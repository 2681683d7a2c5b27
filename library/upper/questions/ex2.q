uppercase straße
