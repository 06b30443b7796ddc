from preuve.cli import main

main()
