"""The lesson kit (questions, predict-then-see, pitfalls) and the numbers behind each lesson."""
