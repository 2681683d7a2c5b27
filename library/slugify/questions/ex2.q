url slug for Crème Brûlée
