percent-decode x%3D1
