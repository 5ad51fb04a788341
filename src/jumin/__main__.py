from jumin.cli import main

main()
