from clvdrift.cli import main

main()
