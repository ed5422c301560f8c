from scfan.cli import main

main()
