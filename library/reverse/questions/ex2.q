what is stressed reversed?
