from seguro.cli import main

main()
