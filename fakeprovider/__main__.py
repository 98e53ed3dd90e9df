from fakeprovider.cli import main

main()
