reverse hello world
