lowercase ÉCOLE
